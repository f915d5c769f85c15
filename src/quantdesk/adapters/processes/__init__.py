"""OS processes of hosted Python strategies: the rlimit launcher, log capture, the exit watcher, script files."""
