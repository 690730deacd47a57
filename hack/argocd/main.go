// Argo CD's application controller and repo server, the two pieces the e2e cluster runs (the
// API server, the UI, Dex and the ApplicationSet controller are left out: nothing here uses
// them, and leaving them out halves the build). One binary; argv[0] or ARGOCD_BINARY_NAME
// picks the piece, as upstream's own multi-call binary does.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	// No grpc.DisableSRVLookups() as upstream's binary calls it: SRV lookups are on only when
	// grpclb is linked in (its init turns them on), which upstream's CLI does and these two
	// pieces do not; the call panics when they are already off.
	name := filepath.Base(os.Args[0])
	if value := os.Getenv("ARGOCD_BINARY_NAME"); value != "" {
		name = value
	}
	var command *cobra.Command
	switch name {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "unknown piece %q: set ARGOCD_BINARY_NAME to %s or %s\n",
			name, common.CommandApplicationController, common.CommandRepoServer)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
