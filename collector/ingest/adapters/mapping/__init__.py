"""Adapter: declarative mappings of any JSON, written in the config.

README.md beside this file says what is read, mapped and refused."""
