package trainer

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// KeyDoc documents one key of the training configuration.
type KeyDoc struct {
	Key     string // as written in key=value and config files, e.g. arch.hidden_size
	Default string // the default (DefaultConfig), "" when empty
	Unit    string // epochs, steps, examples, ... or ""
	Max     string // the documented upper limit (Limits), or ""
	Meaning string // one line
}

// keyInfo is the hand-written part of a key's documentation: its unit and
// meaning. Defaults and limits are read from DefaultConfig and Limits.
var keyInfo = map[string][2]string{
	"data_paths":              {"", "training data directories (built by trm-train data); several are merged"},
	"data_paths_test":         {"", "test data directories (default: data_paths)"},
	"global_batch_size":       {"examples", "examples per optimizer step, summed over all replicas"},
	"epochs":                  {"epochs", "passes over the training set in the whole run"},
	"eval_interval":           {"epochs", "epochs per training pass; the test set is evaluated after each pass (must divide epochs)"},
	"min_eval_interval":       {"passes", "passes to run before the first evaluation"},
	"checkpoint_every_eval":   {"", "write a checkpoint after every evaluation (else only at the end)"},
	"lr":                      {"", "peak learning rate of AdamATan2 for the trained weights"},
	"lr_min_ratio":            {"", "learning rate at the end of the cosine schedule, as a fraction of lr"},
	"lr_warmup_steps":         {"steps", "steps of linear learning-rate warm-up from 0"},
	"beta1":                   {"", "AdamATan2 first-moment decay"},
	"beta2":                   {"", "AdamATan2 second-moment decay"},
	"weight_decay":            {"", "decoupled weight decay of the trained weights"},
	"puzzle_emb_weight_decay": {"", "weight decay of the puzzle embedding (sign-SGD)"},
	"puzzle_emb_lr":           {"", "learning rate of the puzzle embedding (sign-SGD)"},
	"seed":                    {"", "seed of the initialisation, the data order and the halting exploration"},
	"ema":                     {"", "evaluate and checkpoint an exponential moving average of the weights"},
	"ema_rate":                {"", "EMA decay per step"},
	"freeze_weights":          {"", "train only the puzzle embedding, keep every other weight fixed"},
	"run_name":                {"", "name of the run: labels its metrics and logs (the reference's run_name)"},
	"project_name":            {"", "name of the project the run belongs to (the reference's project_name)"},
	"load_checkpoint":         {"", "reference checkpoint (.pt) imported as the initial weights"},
	"checkpoint_dir":          {"", "directory of the run's checkpoints and log (\"\": none); the reference's checkpoint_path"},
	"keep_checkpoints":        {"checkpoints", "step checkpoints kept; older ones are deleted"},
	"best_metric":             {"", "evaluation metric whose best checkpoint is kept apart, e.g. all/exact_accuracy (\"\": none)"},
	"aggregated_voting":       {"", "ARC: pool the votes of all evaluations of the run, as the reference does"},
	"eval_early_exit":         {"", "end a test batch once every example halts (q_halt > 0) instead of after halt_max_steps"},
	"max_non_finite":          {"steps", "consecutive steps with a non-finite loss or gradient that stop the run"},
	"max_steps":               {"steps", "stop after this many steps (0: the schedule's end)"},
	"eval_max_batches":        {"batches", "evaluate at most this many test batches per set (0: all)"},
	"replica_check_every":     {"steps", "with several replicas, compare a checksum of the weights every N steps (0: never)"},
	"resume_auto":             {"", "resume from checkpoint_dir when it holds a checkpoint, else start a fresh run there (a launch key: never compared on resume)"},

	"arch.batch_size":             {"examples", "batch slots of one model: set from global_batch_size / replicas"},
	"arch.seq_len":                {"tokens", "tokens per example: set from the dataset"},
	"arch.vocab_size":             {"tokens", "token vocabulary: set from the dataset"},
	"arch.num_puzzle_identifiers": {"puzzles", "rows of the puzzle-embedding table: set from the dataset"},
	"arch.puzzle_emb_ndim":        {"", "width of a puzzle-embedding row (0: no puzzle embedding); follows hidden_size unless given"},
	"arch.puzzle_emb_len":         {"positions", "sequence positions of the puzzle embedding (0: ceil(puzzle_emb_ndim / hidden_size))"},
	"arch.H_cycles":               {"cycles", "outer recursion cycles per supervision step (the last one is differentiated)"},
	"arch.L_cycles":               {"cycles", "inner (latent) recursion cycles per outer cycle"},
	"arch.H_layers":               {"", "kept for config compatibility; not used by this architecture"},
	"arch.L_layers":               {"layers", "blocks of the one network"},
	"arch.hidden_size":            {"", "width of the network"},
	"arch.expansion":              {"", "SwiGLU intermediate width as a multiple of the input width"},
	"arch.num_heads":              {"heads", "attention heads (hidden_size must be divisible by it)"},
	"arch.pos_encodings":          {"", "positions: rope, learned or none"},
	"arch.rms_norm_eps":           {"", "epsilon of the RMS norms"},
	"arch.rope_theta":             {"", "base of the rotary position frequencies"},
	"arch.halt_max_steps":         {"steps", "supervision steps per example before it is halted; evaluation runs this many"},
	"arch.halt_exploration_prob":  {"", "probability that a training example gets a random minimum number of steps"},
	"arch.forward_dtype":          {"", "the reference's forward precision (float32 or bfloat16); recorded, the backend chooses its precision"},
	"arch.mlp_t":                  {"", "mix tokens with an MLP over the sequence instead of attention"},
	"arch.no_ACT_continue":        {"", "train the halting head on q_halt only (no continue target)"},
	"arch.loss_type":              {"", "stablemax_cross_entropy or softmax_cross_entropy"},
	"arch.loss.loss_type":         {"", "the reference's spelling of arch.loss_type"},
}

// referenceDocs are the reference's forms that Set accepts beside the
// configuration's own keys.
var referenceDocs = []KeyDoc{
	{Key: "arch", Default: "trm", Meaning: "architecture group by the reference's name: resets the model keys to that group's (trm, hrm, trm_singlez, trm_hier6, transformers_baseline)"},
	{Key: "arch.name", Default: "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1", Meaning: "the reference's model class (or a group name): selects the architecture and keeps the model keys given"},
	{Key: "arch.act_enabled", Default: "true", Meaning: "transformers_baseline only: false halts training only at halt_max_steps"},
	{Key: "arch.act_inference", Default: "false", Meaning: "transformers_baseline only: true halts evaluation on the Q head too"},
	{Key: "arch.loss.name", Default: "losses@ACTLossHead", Meaning: "the reference's loss head; checked, ACTLossHead is the one there is"},
	{Key: "checkpoint_path", Meaning: "the reference's name of checkpoint_dir"},
}

// KeyDocs documents every key Set accepts: the configuration's keys
// (Keys), the reference's forms that select or check an architecture, the
// aliases and the reference keys accepted without effect. Sorted by key.
func KeyDocs() []KeyDoc {
	def := DefaultConfig()
	limits := map[string]string{}
	for _, l := range Limits() {
		limits[l.Key] = strconv.FormatFloat(l.Max, 'f', -1, 64)
	}
	var out []KeyDoc
	for _, k := range Keys() {
		info := keyInfo[k]
		d := KeyDoc{Key: k, Unit: info[0], Meaning: info[1], Default: defaultString(def, k), Max: limits[k]}
		if k == "arch.loss.loss_type" {
			d.Max = limits["arch.loss_type"]
		}
		out = append(out, d)
	}
	out = append(out, referenceDocs...)
	for k, why := range ignoredKeys {
		if strings.HasSuffix(k, ".") {
			k += "*" // the key's subkeys: hydra.*
		}
		out = append(out, KeyDoc{Key: k, Meaning: "the reference's; accepted with a warning, no effect: " + why})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// defaultString formats the default of key k in the key=value form.
func defaultString(def Config, k string) string {
	switch k {
	case "arch.puzzle_emb_ndim":
		return "${.hidden_size}"
	case "data_paths_test":
		return "data_paths"
	}
	f := reflect.ValueOf(def)
	for _, i := range keyPaths()[k] {
		f = f.Field(i)
	}
	switch v := f.Interface().(type) {
	case []string:
		if len(v) == 0 {
			return ""
		}
		return "[" + strings.Join(v, ",") + "]"
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// unknownKey is the error for a key Set does not know: the nearest valid
// key when one is close, else the list of keys.
func unknownKey(k string) error {
	if s := suggestKey(k); s != "" {
		return fmt.Errorf("unknown key %q; did you mean %s?", k, s)
	}
	return fmt.Errorf("unknown key %q; valid keys: %s", k, strings.Join(Keys(), ", "))
}

// suggestKey returns the accepted key nearest to k in edit distance, or
// "" when none is near (at most a third of the key's length, at least 2).
func suggestKey(k string) string {
	cands := append(Keys(), "arch", "checkpoint_path", "arch.name", "arch.loss.name", "arch.act_enabled", "arch.act_inference")
	for ik := range ignoredKeys {
		cands = append(cands, strings.TrimSuffix(ik, "."))
	}
	if !strings.HasPrefix(k, "arch.") && keyPaths()["arch."+k] != nil {
		return "arch." + k // a model key written without its group
	}
	best, bestD := "", max(2, len(k)/3)+1
	for _, c := range cands {
		if d := editDistance(strings.ToLower(k), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
