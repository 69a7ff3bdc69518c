package main

import "errors"

// errStopped is returned by waits cut short by the run's context.
var errStopped = errors.New("run stopped (time bound or signal)")
