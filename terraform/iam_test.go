package terraform_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/sluicehq/sluice/pipeline/config"
	"github.com/sluicehq/sluice/pipeline/kafka"
	"github.com/sluicehq/sluice/pipeline/process"
	"github.com/sluicehq/sluice/pipeline/service"
	"github.com/sluicehq/sluice/pipeline/sink"
	"github.com/sluicehq/sluice/pipeline/wire"
)

// The MSK IAM policies of the three services (modules/ecs/iam_msk.tf) are checked against
// what the code does with the built-in pipeline file (pipeline/config/default.yaml):
// every topic, group and transactional id each service reads, writes, creates or
// describes is derived here from the pipeline and the code's own naming functions, then
// the evaluated policies must allow exactly that. Too little fails (the service would be
// refused at run time); a grant whose pattern also matches a name of the pipeline the
// service never touches fails too (a narrower prefix would do), and so does a bare `*`
// in place of a name.

// sampleInstance stands for a task's --instance-id in transactional ids.
const sampleInstance = "task-1"

// kafkaAccess is what one service does on MSK, by name.
type kafkaAccess struct {
	read, write, create, configs set  // topics
	describeTopics               set  // topics whose offsets or metadata it reads
	join, describeGroups         set  // consumer groups
	txn                          set  // transactional ids (with sampleInstance)
	clusterConfigs               bool // reads the brokers' configuration
}

type set map[string]bool

func (s set) add(names ...string) {
	for _, n := range names {
		s[n] = true
	}
}

func (s set) sorted() []string {
	out := make([]string, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func newAccess() *kafkaAccess {
	return &kafkaAccess{read: set{}, write: set{}, create: set{}, configs: set{}, describeTopics: set{},
		join: set{}, describeGroups: set{}, txn: set{}}
}

// stageGroup is the consumer group of a process stage. process.Stage builds it as
// "sluice." + StageConfig.Name without exporting it; the test checks every group it
// derives is one of service.Groups, so a rename there fails here.
func stageGroup(name string) string { return "sluice." + name }

// deriveAccess is, per ECS service, what the code reads, writes and describes for
// pipeline p (the sources of each step are named in the comments).
func deriveAccess(t *testing.T, p *config.Pipeline) map[string]*kafkaAccess {
	t.Helper()
	var all, raw []string
	for _, s := range kafka.TopicsFor(p) {
		all = append(all, s.Name)
	}
	for _, tp := range p.Topics {
		raw = append(raw, tp.Name)
	}
	groups := set{}
	groups.add(service.Groups(p)...)

	acc := map[string]*kafkaAccess{"ingest": newAccess(), "process": newAccess(), "sink": newAccess()}
	for _, a := range acc {
		// service.Setup: kafka.EnsureTopics(kafka.TopicsFor(p)) in every service, which
		// also reads the cleanup.policy of the compacted (changelog) topics.
		a.create.add(all...)
		for _, s := range kafka.TopicsFor(p) {
			if s.Compacted {
				a.configs.add(s.Name)
			}
		}
	}

	// ingest (service.StartIngest): transactional writes of the raw topics under
	// wire.TransactionalID("ingest", instance) + ".<client>", their max.message.bytes,
	// and the WebSocket stream (fanout, direct partition reads, no group) of every clean
	// topic (ingest.WebSockets.streamable) and every aggregate topic (AllowStream).
	in := acc["ingest"]
	in.write.add(raw...)
	in.configs.add(raw...)
	for i := range 2 {
		in.txn.add(fmt.Sprintf("%s.%d", wire.TransactionalID("ingest", sampleInstance), i))
	}
	for _, tp := range raw {
		in.read.add(wire.CleanTopic(tp))
	}
	for _, ag := range p.Aggregations {
		in.read.add(wire.AggTopic(ag.Name))
	}

	// process (service.NewProcessor): the stages, as their exported StageConfig builders
	// name them and their inputs; what each writes is the table below.
	pr := acc["process"]
	clean := &process.Clean{Topics: map[string]process.CleanTopic{}}
	for _, tp := range raw {
		clean.Topics[tp] = process.CleanTopic{Name: tp}
	}
	type stage struct {
		cfg    process.StageConfig
		writes []string
		stores []string // state stores, each with a changelog per input
	}
	cleanCfg := clean.StageConfig(process.StageConfig{})
	var tiers []string
	for _, tier := range service.RetryTiers(p) {
		tiers = append(tiers, tier.Topic)
	}
	// Clean: clean records, dead letters (dlq.DeadLetter), retries into the tier topics.
	cleanStage := stage{cfg: cleanCfg, writes: tiers, stores: []string{"dedup"}}
	for _, tp := range cleanCfg.Inputs {
		cleanStage.writes = append(cleanStage.writes, wire.CleanTopic(tp), wire.DLQTopic(tp))
	}
	stages := []stage{cleanStage}
	if len(tiers) > 0 {
		// Retry: delivers back to the original topic (dlq.Redelivery), which is a clean
		// stage input; what it cannot deliver goes to wire.RetryDLQTopic.
		r := &process.Retry{Topics: tiers}
		stages = append(stages, stage{cfg: r.StageConfig(process.StageConfig{}),
			writes: append(slices.Clone(cleanCfg.Inputs), wire.RetryDLQTopic)})
	}
	for _, ag := range p.Aggregations {
		src, ok := p.Topic(ag.From)
		if !ok {
			t.Fatalf("aggregation %s: no topic %s", ag.Name, ag.From)
		}
		rp := &process.Repartition{Agg: ag, Partitions: src.Partitions}
		stages = append(stages, stage{cfg: rp.StageConfig(process.StageConfig{}),
			writes: []string{wire.RepartitionTopic(ag.Name), wire.DLQTopic(ag.From)}})
		agg := &process.Aggregate{Agg: ag, Partitions: src.Partitions}
		cfg, err := agg.StageConfig(process.StageConfig{})
		if err != nil {
			t.Fatal(err)
		}
		stages = append(stages, stage{cfg: cfg, stores: []string{"windows", "marks"},
			writes: []string{wire.AggTopic(ag.Name), wire.LateTopic(ag.From), wire.DLQTopic(ag.From)}})
		// The repartition stage asks the clean stage's group how far behind the source
		// partition is (process.Repartition.Lag).
		pr.describeGroups.add(stageGroup(wire.StageClean))
		pr.describeTopics.add(ag.From)
	}
	// Every stage checks its transaction timeout against the brokers'
	// transaction.max.timeout.ms (kafka.CheckTxnTimeout: DescribeConfigs of the brokers).
	pr.clusterConfigs = true
	for _, s := range stages {
		g := stageGroup(s.cfg.Name)
		if !groups[g] {
			t.Fatalf("stage %s: group %s is not one of service.Groups %v", s.cfg.Name, g, groups.sorted())
		}
		pr.join.add(g)
		pr.txn.add(wire.TransactionalID(s.cfg.Name, sampleInstance))
		pr.read.add(s.cfg.Inputs...)
		pr.write.add(s.writes...)
		for _, input := range s.cfg.Inputs {
			for _, store := range s.stores {
				// Changelogs are written in the stage's transactions and read back on
				// restore.
				cl := s.cfg.Changelog(input, store)
				pr.read.add(cl)
				pr.write.add(cl)
			}
		}
	}

	// sink (service.NewSink): every clean topic and every aggregate topic, group
	// wire.GroupID(wire.StageSink), dead letters to sink.DefaultDLQ of the topic; not transactional
	// (the warehouse holds the offsets).
	sk := acc["sink"]
	sk.join.add(wire.GroupID(wire.StageSink))
	for _, tp := range raw {
		sk.read.add(wire.CleanTopic(tp))
	}
	for _, ag := range p.Aggregations {
		sk.read.add(wire.AggTopic(ag.Name))
	}
	for tp := range sk.read {
		sk.write.add(sink.DefaultDLQ(tp))
	}

	// The monitor (service.StartMonitor) runs in process and sink, not in ingest: it
	// reads every dead-letter topic (depth and oldest age), the offsets of the retry
	// topics and the retry group, and the lag of every group of service.Groups.
	for _, name := range []string{"process", "sink"} {
		a := acc[name]
		for _, tp := range raw {
			a.read.add(wire.DLQTopic(tp))
		}
		if len(tiers) > 0 {
			a.read.add(wire.RetryDLQTopic)
			a.describeTopics.add(tiers...)
			a.describeGroups.add(stageGroup(wire.StageRetry))
		}
		if len(p.Aggregations) > 0 {
			a.read.add(wire.SinkDLQTopic)
		}
		a.describeGroups.add(service.Groups(p)...)
	}
	return acc
}

// Resource kinds of MSK IAM, and the kind each kafka-cluster action applies to.
const (
	kindCluster = "cluster"
	kindTopic   = "topic"
	kindGroup   = "group"
	kindTxn     = "transactional-id"
)

var actionKind = map[string]string{
	"kafka-cluster:Connect":                             kindCluster,
	"kafka-cluster:DescribeCluster":                     kindCluster,
	"kafka-cluster:WriteDataIdempotently":               kindCluster,
	"kafka-cluster:DescribeClusterDynamicConfiguration": kindCluster,
	"kafka-cluster:DescribeTopic":                       kindTopic,
	"kafka-cluster:CreateTopic":                         kindTopic,
	"kafka-cluster:ReadData":                            kindTopic,
	"kafka-cluster:WriteData":                           kindTopic,
	"kafka-cluster:DescribeTopicDynamicConfiguration":   kindTopic,
	"kafka-cluster:DescribeGroup":                       kindGroup,
	"kafka-cluster:AlterGroup":                          kindGroup,
	"kafka-cluster:DescribeTransactionalState":          kindTxn,
	"kafka-cluster:AlterTransactionalState":             kindTxn,
}

// Test MSK cluster of the evaluated policies.
const (
	testClusterName = "sluice-test"
	testClusterUUID = "0a1b2c3d-uuid-1"
)

func kafkaARN(kind, name string) string {
	base := fmt.Sprintf("arn:%s:kafka:%s:%s:%s/%s/%s", fakePartition, fakeRegion, fakeAccount, kind, testClusterName, testClusterUUID)
	if kind == kindCluster {
		return base
	}
	return base + "/" + name
}

// needs turns what a service does into the (action -> resource ARN) pairs MSK checks.
// Reading or writing a topic also needs DescribeTopic, joining a group DescribeGroup,
// as MSK's action table says.
func (a *kafkaAccess) needs() map[string]set {
	n := map[string]set{}
	add := func(action, kind string, names ...string) {
		if n[action] == nil {
			n[action] = set{}
		}
		for _, name := range names {
			n[action].add(kafkaARN(kind, name))
		}
	}
	cluster := kafkaARN(kindCluster, "")
	add("kafka-cluster:Connect", kindCluster, "")
	add("kafka-cluster:DescribeCluster", kindCluster, "")
	if len(a.write) > 0 {
		// franz-go producers are idempotent by default; transactional ones too.
		n["kafka-cluster:WriteDataIdempotently"] = set{cluster: true}
	}
	if a.clusterConfigs {
		n["kafka-cluster:DescribeClusterDynamicConfiguration"] = set{cluster: true}
	}
	topicSets := map[string]set{
		"kafka-cluster:ReadData":                          a.read,
		"kafka-cluster:WriteData":                         a.write,
		"kafka-cluster:CreateTopic":                       a.create,
		"kafka-cluster:DescribeTopicDynamicConfiguration": a.configs,
	}
	for action, s := range topicSets {
		if len(s) > 0 {
			add(action, kindTopic, s.sorted()...)
			add("kafka-cluster:DescribeTopic", kindTopic, s.sorted()...)
		}
	}
	if len(a.describeTopics) > 0 {
		add("kafka-cluster:DescribeTopic", kindTopic, a.describeTopics.sorted()...)
	}
	if len(a.join) > 0 {
		add("kafka-cluster:AlterGroup", kindGroup, a.join.sorted()...)
		add("kafka-cluster:DescribeGroup", kindGroup, a.join.sorted()...)
	}
	if len(a.describeGroups) > 0 {
		add("kafka-cluster:DescribeGroup", kindGroup, a.describeGroups.sorted()...)
	}
	if len(a.txn) > 0 {
		add("kafka-cluster:DescribeTransactionalState", kindTxn, a.txn.sorted()...)
		add("kafka-cluster:AlterTransactionalState", kindTxn, a.txn.sorted()...)
	}
	return n
}

// iamPattern compiles an IAM resource pattern: * is any run of characters, ? one.
func iamPattern(p string) *regexp.Regexp {
	q := regexp.QuoteMeta(p)
	q = strings.ReplaceAll(q, `\*`, `.*`)
	q = strings.ReplaceAll(q, `\?`, `.`)
	return regexp.MustCompile("^" + q + "$")
}

// checkPolicy compares one service's evaluated statements with what it needs; universe
// holds, per resource kind, every ARN of the pipeline (all services' names).
func checkPolicy(stmts []statement, need map[string]set, universe map[string]set) []string {
	var errs []string
	type grant struct {
		sid, action, pattern string
		re                   *regexp.Regexp
	}
	var grants []grant
	for _, s := range stmts {
		if s.effect != "Allow" {
			continue
		}
		for _, action := range s.actions {
			kind, known := actionKind[action]
			if !known {
				errs = append(errs, fmt.Sprintf("statement %s: action %s is not one Sluice needs (a wildcard action?)", s.sid, action))
				continue
			}
			for _, r := range s.resources {
				grants = append(grants, grant{s.sid, action, r, iamPattern(r)})
				switch {
				case r == "*" || strings.HasSuffix(r, "/*") && kind != kindCluster:
					errs = append(errs, fmt.Sprintf("statement %s: %s on %s: `*` in place of the whole name; a prefix would do", s.sid, action, r))
					continue
				}
				matched := 0
				var extra []string
				for arn := range universe[kind] {
					if !iamPattern(r).MatchString(arn) {
						continue
					}
					matched++
					if !need[action][arn] {
						extra = append(extra, arn[strings.LastIndex(arn, "/")+1:])
					}
				}
				sort.Strings(extra)
				if matched == 0 {
					errs = append(errs, fmt.Sprintf("statement %s: %s on %s matches nothing the pipeline has", s.sid, action, r))
				}
				switch {
				case len(extra) > 0 && strings.ContainsAny(r, "*?"):
					errs = append(errs, fmt.Sprintf("statement %s: %s on %s is too broad: it also matches %v, which the service never touches",
						s.sid, action, r, extra))
				case len(extra) > 0:
					errs = append(errs, fmt.Sprintf("statement %s: %s on %v, which the service never touches", s.sid, action, extra))
				}
			}
		}
	}
	actions := make([]string, 0, len(need))
	for a := range need {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	for _, action := range actions {
		var missing []string
		for _, arn := range need[action].sorted() {
			ok := false
			for _, g := range grants {
				if g.action == action && g.re.MatchString(arn) {
					ok = true
					break
				}
			}
			if !ok {
				name := arn[strings.LastIndex(arn, "/")+1:]
				if actionKind[action] == kindCluster {
					name = "the cluster"
				}
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			errs = append(errs, fmt.Sprintf("missing %s on %v", action, missing))
		}
	}
	return errs
}

// mskPolicies evaluates data.aws_iam_policy_document.msk of modules/ecs for pipeline p.
func mskPolicies(t *testing.T, p *config.Pipeline) map[string][]statement {
	t.Helper()
	var raw []string
	for _, tp := range p.Topics {
		raw = append(raw, tp.Name)
	}
	m := loadEvalModule(t, "modules/ecs", map[string]cty.Value{
		"event_topics":     stringsVal(raw),
		"msk_cluster_name": cty.StringVal(testClusterName),
		"msk_cluster_uuid": cty.StringVal(testClusterUUID),
	})
	doc := m.block(t, "data", "aws_iam_policy_document", "msk")
	out := map[string][]statement{}
	for key, ctx := range m.instances(t, doc) {
		out[key] = policyStatements(t, doc.Body, ctx)
	}
	return out
}

func TestMSKPoliciesMatchWhatEachServiceDoes(t *testing.T) {
	p := config.Default()
	acc := deriveAccess(t, p)
	policies := mskPolicies(t, p)

	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range policies {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"ingest", "process", "sink"}) {
		t.Fatalf("policies for %v, want ingest, process and sink", got)
	}

	// Every name of the pipeline, by kind: the names a too-broad pattern would hit.
	universe := map[string]set{kindCluster: {kafkaARN(kindCluster, ""): true}, kindTopic: {}, kindGroup: {}, kindTxn: {}}
	for _, s := range kafka.TopicsFor(p) {
		universe[kindTopic].add(kafkaARN(kindTopic, s.Name))
	}
	for _, g := range service.Groups(p) {
		universe[kindGroup].add(kafkaARN(kindGroup, g))
	}
	used := set{}
	for _, a := range acc {
		for _, id := range a.txn.sorted() {
			universe[kindTxn].add(kafkaARN(kindTxn, id))
		}
		for _, s := range []set{a.read, a.write} {
			used.add(s.sorted()...)
		}
	}
	// The derivation itself: every topic the pipeline creates is read or written by some
	// service (else the table above has fallen behind the code).
	for _, s := range kafka.TopicsFor(p) {
		if !used[s.Name] {
			t.Errorf("topic %s of kafka.TopicsFor is neither read nor written by any service in this test's derivation", s.Name)
		}
	}

	for _, name := range []string{"ingest", "process", "sink"} {
		t.Run(name, func(t *testing.T) {
			for _, e := range checkPolicy(policies[name], acc[name].needs(), universe) {
				t.Errorf("%s: %s", name, e)
			}
		})
	}
}

// TestMSKPolicyCheckCatchesGaps runs the comparison on hand-made statements, so a check
// that always passes is caught.
func TestMSKPolicyCheckCatchesGaps(t *testing.T) {
	topic := func(n string) string { return kafkaARN(kindTopic, n) }
	need := map[string]set{"kafka-cluster:ReadData": {topic("a.clean"): true, topic("agg.x"): true}}
	universe := map[string]set{kindTopic: {topic("a"): true, topic("a.clean"): true, topic("a.dlq"): true, topic("agg.x"): true}}
	cases := []struct {
		name      string
		resources []string
		want      string
	}{
		{"exact", []string{topic("a.clean"), topic("agg.*")}, ""},
		{"too little", []string{topic("a.clean")}, "missing kafka-cluster:ReadData on [agg.x]"},
		{"too broad", []string{topic("a.*"), topic("agg.*")}, "too broad: it also matches [a.dlq]"},
		{"bare star", []string{topic("*")}, "`*` in place of the whole name"},
		{"dead grant", []string{topic("a.clean"), topic("agg.*"), topic("b.clean")}, "matches nothing the pipeline has"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := checkPolicy([]statement{{sid: "Read", effect: "Allow", actions: []string{"kafka-cluster:ReadData"}, resources: c.resources}}, need, universe)
			got := strings.Join(errs, "\n")
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// TestServicesUseTheirOwnMSKPolicy checks that module.<name> gets msk["<name>"].
func TestServicesUseTheirOwnMSKPolicy(t *testing.T) {
	mods := loadModules(t)
	m := mods["modules/ecs"]
	if m == nil {
		t.Fatal("no modules/ecs")
	}
	for _, name := range []string{"ingest", "process", "sink"} {
		call := m.calls[name]
		if call == nil {
			t.Errorf("no module %q", name)
			continue
		}
		attr, ok := call.Body.Attributes["task_policy_json"]
		if !ok {
			t.Errorf("module %q: no task_policy_json", name)
			continue
		}
		src, err := os.ReadFile(attr.Expr.Range().Filename)
		if err != nil {
			t.Fatal(err)
		}
		got := string(attr.Expr.Range().SliceBytes(src))
		if want := fmt.Sprintf("data.aws_iam_policy_document.msk[%q].json", name); got != want {
			t.Errorf("module %q: task_policy_json = %s, want %s", name, got, want)
		}
	}
}
