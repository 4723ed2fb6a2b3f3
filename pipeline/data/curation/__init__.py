"""Curation: a raw layout's inputs, filtered, decoded, split and checked, into the store."""
