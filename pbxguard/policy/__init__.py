"""Policy: what to do with a call, from its verdict (`rules`) and its caller ID (`callerid`, `callers`)."""
