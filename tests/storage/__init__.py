"""Storage tests: the file stores, local and S3, and what is kept in them."""
