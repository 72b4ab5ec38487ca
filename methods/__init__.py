"""Built-in methods plugins: every public module here is registered under its file name."""
