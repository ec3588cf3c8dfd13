"""tcpaudit: find the Linux TCP/NAT/conntrack settings that make connections fail at random."""

__version__ = "0.1.0"
