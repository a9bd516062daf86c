"""Adapter: UniFi controller ``stat/device`` (uap, usw).

README.md beside this file says what is read, mapped and refused."""
