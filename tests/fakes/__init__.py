"""Small local servers that speak real wire formats, for testing adapters without the internet."""
