"""Adapter: Meraki webhook alerts.

README.md beside this file says what is read, mapped and refused."""
