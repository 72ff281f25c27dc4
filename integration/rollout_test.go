package integration_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// rolloutCmds are the commands of the rollout-* scenarios.
func rolloutCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"fakeprometheus": cmdFakePrometheus,
	}
}

// cmdFakePrometheus serves Prometheus's instant query API on 127.0.0.1:
// every query answers a one-sample vector whose value is the content of
// FILE at the time of the request (the scenario changes it). It sets
// PROM_URL.
//
//	fakeprometheus FILE
func cmdFakePrometheus(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: fakeprometheus FILE")
	}
	file := ts.MkAbs(args[0])
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" || r.URL.Query().Get("query") == "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"want /api/v1/query?query=..."}`)
			return
		}
		v, err := os.ReadFile(file)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"status":"error","errorType":"internal","error":%q}`, err.Error())
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764720000,%q]}]}}`, strings.TrimSpace(string(v)))
	}))
	ts.Defer(srv.Close)
	ts.Setenv("PROM_URL", srv.URL)
}
