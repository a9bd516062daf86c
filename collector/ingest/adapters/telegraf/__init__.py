"""Adapter: Telegraf line protocol and JSON (snmp IF-MIB, net).

README.md beside this file says what is read, mapped and refused."""
