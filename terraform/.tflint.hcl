# tflint with its bundled terraform ruleset only: no plugin is downloaded, so
# `tflint --init` is not needed and the check runs offline. "all" turns on every rule of
# the ruleset (naming, documented and typed variables and outputs, unused declarations,
# pinned required providers and version, standard module structure, ...).
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}
