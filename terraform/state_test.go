package terraform_test

import (
	"strings"
	"testing"
)

// The process service keeps its pebble state stores on the task's ephemeral storage: the
// module call sets SLUICE_STATE_DIR (the container's root file system is read-only), a
// writable mount there, and an ephemeral storage size from a validated variable; the
// service module turns them into a volume, a mount point and an ephemeral_storage block.
func TestProcessTaskHasStateStorage(t *testing.T) {
	mods := loadModules(t)
	ecs := mods["modules/ecs"]
	if ecs == nil {
		t.Fatal("modules/ecs not found")
	}
	call := ecs.calls["process"]
	if call == nil {
		t.Fatal(`modules/ecs: no module "process"`)
	}
	attrs := call.Body.Attributes
	for _, name := range []string{"environment", "state_dir", "ephemeral_storage_gib"} {
		if attrs[name] == nil {
			t.Fatalf(`module "process" does not set %s`, name)
		}
	}
	if exprText(t, attrs["ephemeral_storage_gib"].Expr) != "var.process_ephemeral_storage_gib" {
		t.Error(`module "process": ephemeral_storage_gib must come from var.process_ephemeral_storage_gib`)
	}
	if !ecs.variables["process_ephemeral_storage_gib"] {
		t.Error("modules/ecs declares no variable process_ephemeral_storage_gib")
	}
	env := exprText(t, attrs["environment"].Expr)
	if !strings.Contains(env, "SLUICE_STATE_DIR") {
		t.Errorf(`module "process": environment %s does not set SLUICE_STATE_DIR`, env)
	}
	svc := mods["modules/ecs/service"]
	if svc == nil {
		t.Fatal("modules/ecs/service not found")
	}
	for _, v := range []string{"state_dir", "ephemeral_storage_gib"} {
		if !svc.variables[v] {
			t.Errorf("modules/ecs/service declares no variable %s", v)
		}
	}
	td := svc.resources["aws_ecs_task_definition.this"]
	if td == nil {
		t.Fatal("modules/ecs/service: no aws_ecs_task_definition.this")
	}
	var storage, stateVol bool
	for _, b := range td.Body.Blocks {
		if b.Type != "dynamic" || len(b.Labels) != 1 {
			continue
		}
		text := exprText(t, b.Body.Attributes["for_each"].Expr)
		switch b.Labels[0] {
		case "ephemeral_storage":
			storage = strings.Contains(text, "var.ephemeral_storage_gib")
		case "volume":
			stateVol = strings.Contains(text, "var.state_dir")
		}
	}
	if !storage {
		t.Error("the task definition has no ephemeral_storage block sized by var.ephemeral_storage_gib")
	}
	if !stateVol {
		t.Error("the task definition has no volume for var.state_dir")
	}
	cd := exprText(t, td.Body.Attributes["container_definitions"].Expr)
	if !strings.Contains(cd, `containerPath = var.state_dir`) {
		t.Error("the container mounts nothing at var.state_dir (its root file system is read-only)")
	}
}
