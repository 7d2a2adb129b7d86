"""The built-in web client: server-rendered pages whose scripts speak the public WebSocket API."""
