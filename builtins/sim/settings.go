package sim

import "github.com/cloudspeak/cloudspeak/lang"

// Settings are what a `provider sim { … }` block takes. The simulated
// provider stands in for any pool's provider in `cloudspeak simulate`; a
// policy may also name it, for a pool that is only ever simulated (the
// daemon does not run it).
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"boot": {Type: lang.Duration},
	},
}
