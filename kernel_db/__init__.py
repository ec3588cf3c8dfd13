"""Kernel knowledge base: data files read by tcpaudit.kernel.db."""
