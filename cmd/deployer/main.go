// Command deployer is the deployer daemon and the operators' CLI.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sre-tools/deployer"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// Exit statuses of every command.
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitIntervention = 3
)

// statusError carries an exit status other than 1; a nil Err prints nothing.
type statusError struct {
	Code int
	Err  error
}

func (e *statusError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *statusError) Unwrap() error { return e.Err }

func usageErrorf(format string, args ...any) error {
	return &statusError{Code: exitUsage, Err: fmt.Errorf(format, args...)}
}

// exitCode is the one place that maps an error to an exit status and prints it.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var xe *xmlExitError
	if errors.As(err, &xe) {
		err = &statusError{Code: xe.Code, Err: xe.Err}
	}
	// Errors carry text from outside (an inventory's answer, host names,
	// a coordinator's message): control and bidi characters are escaped
	// as in the tables (line breaks and tabs of our own messages kept).
	var se *statusError
	if errors.As(err, &se) {
		if se.Err != nil {
			fmt.Fprintln(os.Stderr, "deployer:", deployer.EscapeBlock(se.Err.Error()))
		}
		return se.Code
	}
	fmt.Fprintln(os.Stderr, "deployer:", deployer.EscapeBlock(err.Error()))
	return exitError
}
