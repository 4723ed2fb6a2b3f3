"""Where raw data sets come from: the raw layout every source writes, the real-data adapters and
the optional downloads."""
