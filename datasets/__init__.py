"""Built-in datasets plugins: every public module here is registered under its file name."""
