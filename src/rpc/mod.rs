//! HTTP server and Supervisor's XML-RPC API.
