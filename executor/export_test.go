package executor

// CompareSnapshots makes e check writes by comparing tree snapshots, the
// fallback when the tree cannot be watched.
func CompareSnapshots(e *Executor) { e.noWatch = true }
func PathList(p []string) string   { return pathList(p) }
