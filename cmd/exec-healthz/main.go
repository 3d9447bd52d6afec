// Command exec-healthz is not implemented yet; see the project's open issues.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "exec-healthz: not implemented yet")
	os.Exit(2)
}
