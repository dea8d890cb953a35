"""The command line. Application code: the library never imports it."""
