// Command termind is the whole daemon and its administration CLI in one
// binary. This package only wires: flags, configuration, concrete types and
// signals. Business rules live in internal/…, queue, workers and connectors.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	// The zone database is compiled in so that times render in the right
	// zone on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `termind — calendar sync, notifications and retention for booking platforms

Usage:
  termind serve [--listen ADDR] [--roles api,worker,scheduler]
  termind migrate
  termind tenant create NAME
  termind tenant offboard ID [--grace 28d] [--cancel]
  termind tenant records ID [--format json|markdown]
  termind apikey create --tenant ID --role ingest|admin
  termind purge [--dry-run] [--output text|json]
  termind connections list --tenant ID [--subject ID] [--output text|json]
  termind connections revoke ID --tenant ID --reason TEXT
  termind secrets rotate
  termind subject export|erase ID --tenant ID
  termind sync CONNECTION [--full] [--wait] [--output text|json]
  termind version
  termind tenant retention TENANT [--notifications 30d] [--audit 365d] [--imported-events 30d]
                                  [--broken-connections 30d] [--inactive-subjects 5y] [--inactivity-action erase|anonymise]
  termind hold add --tenant T [--subject ID] --reason TEXT --until DATE
  termind hold list --tenant T [--output text|json]
  termind hold release ID --tenant T

Configuration comes from TERMIND_* environment variables (see README.md);
with none set, termind uses ./termind.db, an embedded queue, and writes
mail and SMS to ./deliveries/.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// errUsage marks errors caused by how the command was called (exit code 2).
var errUsage = errors.New("usage")

// run executes one command and returns the process exit code. It takes its
// environment as arguments so that tests can drive the CLI in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	env := &cli{stdout: stdout, stderr: stderr, lookup: lookup}
	var err error
	switch args[0] {
	case "serve":
		err = env.serve(ctx, args[1:])
	case "migrate":
		err = env.migrate(ctx, args[1:])
	case "tenant":
		err = env.tenant(ctx, args[1:])
	case "apikey":
		err = env.apikey(ctx, args[1:])
	case "purge":
		err = env.purge(ctx, args[1:])
	case "connections":
		err = env.connections(ctx, args[1:])
	case "secrets":
		err = env.secrets(ctx, args[1:])
	case "subject":
		err = env.subject(ctx, args[1:])
	case "sync":
		err = env.sync(ctx, args[1:])
	case "hold":
		err = env.hold(ctx, args[1:])
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "termind", version)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "termind: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "termind: %v\n", err)
		return 1
	}
}
