"""OAuth2 applications and the tokens obtained through them (pure rules; no I/O at import)."""
