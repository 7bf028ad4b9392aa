"""The edges: command line, HTTP service, reports and plots."""
