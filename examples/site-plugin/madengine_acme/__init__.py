"""Example madengine site plugin for the (fictional) ACME benchmark fleet."""
