"""Device profiles (YAML, package data); see README.md here for the schema."""
