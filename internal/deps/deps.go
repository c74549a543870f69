package deps
import (
 _ "github.com/vmihailenco/msgpack/v5"
 _ "golang.org/x/sys/unix"
 _ "github.com/hashicorp/go-hclog"
 _ "github.com/songgao/water"
)
