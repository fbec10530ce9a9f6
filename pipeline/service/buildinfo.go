package service

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterBuildInfo publishes sluice_build_info{version,goversion} = 1: the module
// version (or the VCS revision of a development build) and the Go version.
func RegisterBuildInfo(reg prometheus.Registerer) error {
	version, goversion := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goversion = bi.GoVersion
		version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && (version == "" || version == "(devel)") {
				version = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "sluice_build_info",
		Help:        "Build of the running binary (value 1).",
		ConstLabels: prometheus.Labels{"version": version, "goversion": goversion},
	})
	g.Set(1)
	return reg.Register(g)
}
