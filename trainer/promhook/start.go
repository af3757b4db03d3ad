package promhook

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// Start builds an exporter and serves it on addr (see ListenAddr), and
// prints the scrape URL to opt.Log: with port 0 that line is the only way
// to learn the port. stop shuts the server down and releases NVML; call it
// after the run, once no more hooks fire.
func Start(addr string, opt Options) (e *Exporter, stop func(), err error) {
	e = New(opt)
	srv, err := e.Serve(addr)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	if opt.Log != nil {
		fmt.Fprintf(opt.Log, "metrics: serving %s (run %q)\n", srv.URL(), e.run)
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		e.Close()
	}
	return e, stop, nil
}

// RunName is the default run label: the checkpoint directory's name,
// which already names the run for the user, or else the start time, so
// two runs on one Prometheus never share a series.
func RunName(checkpointDir string, start time.Time) string {
	if checkpointDir != "" {
		if b := filepath.Base(filepath.Clean(checkpointDir)); b != "." && b != "/" {
			return b
		}
	}
	return "trm-" + start.UTC().Format("20060102-150405")
}
