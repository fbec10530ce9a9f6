package config

import "flag"

// State configures where the process stages keep their state stores.
type State struct{}

// BindFlags registers the state flags.
func (s *State) BindFlags(fs *flag.FlagSet) {}
