// Command kube2sky is not implemented yet; see the project's open issues.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kube2sky: not implemented yet")
	os.Exit(2)
}
