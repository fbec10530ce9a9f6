package config

import "flag"

// Registry configures how services authenticate to the schema registry.
type Registry struct{}

// BindFlags registers the schema registry flags.
func (r *Registry) BindFlags(fs *flag.FlagSet) {}
