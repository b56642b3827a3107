"""The event contract shared by the watcher, the queue consumers and webhooks."""
