"""pagesim: a discrete-event simulator of the Linux 5.12 page allocator on NUMA hardware."""

__version__ = "0.1.0"
