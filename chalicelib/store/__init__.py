"""DynamoDB tables as pynamodb models; the only package that imports pynamodb.

Importing it hands pynamodb the process's shared botocore session
(:func:`chalicelib.aws_clients.session`): pynamodb otherwise builds a session per table
connection and thread (``pynamodb.connection.base.get_session``), each parsing botocore's
endpoint and service data again (~115 ms and ~10 MB each on a cold start). The shared
session serializes client creation, which is why pynamodb wanted a session per thread;
each table still gets its own client (and connection pool).
"""

from pynamodb.connection import base as _pynamodb_connection

from chalicelib import aws_clients

_pynamodb_connection.get_session = aws_clients.session
