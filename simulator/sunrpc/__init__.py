"""Mirrors linux/net/sunrpc (server side) and the nfsd thread loop of fs/nfsd/nfssvc.c."""
