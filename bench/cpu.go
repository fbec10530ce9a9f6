package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU is the user and system CPU time of this process so far, in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// scrapeCPU returns a function that reads process_cpu_seconds_total from the target's
// /metrics (-1 when it cannot: no such metric, or the endpoint needs what we lack).
func scrapeCPU(base, token string) func() float64 {
	cl := &http.Client{Timeout: 5 * time.Second}
	return func() float64 {
		req, err := http.NewRequest(http.MethodGet, strings.TrimRight(base, "/")+"/metrics", nil)
		if err != nil {
			return -1
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return -1
		}
		return parseCPU(bufio.NewScanner(resp.Body))
	}
}

// parseCPU finds process_cpu_seconds_total in a Prometheus text exposition.
func parseCPU(sc *bufio.Scanner) float64 {
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_cpu_seconds_total "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
