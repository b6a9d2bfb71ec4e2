package lang

// BlockSchema says which settings a `provider KIND { … }` or
// `balancer KIND { … }` block takes. The language itself knows no cloud: the
// kinds and their settings are data, handed to the checker in Options.
type BlockSchema struct {
	Settings map[string]SettingSchema
	// Required are the settings that must be present; "a|b" means
	// exactly one of a and b.
	Required []string
	// Address, if set, names a setting that gives the pool an address the
	// provider can move from one instance to another (ec2's elastic_ip):
	// enough for a primary pool without a balancer.
	Address string
}

// SettingSchema describes one setting's arguments.
type SettingSchema struct {
	// Type of the single argument, for settings like `region "us-east-1"`
	// or `grace 10s`. Ignored when Words, Map or Check is set.
	Type Type
	// Words, if set, is the list of bare words the single argument may be
	// (`mode http`).
	Words []string
	// Map means the setting is a `{ KEY = "VALUE", … }` map of strings.
	Map bool
	// List means one or more values of Type, separated by commas
	// (`hosts "web1", "web2"`).
	List bool
	// Check validates settings whose arguments have a shape of their own
	// (`health http "/healthz" every 2s`); it reports through c.
	Check func(c *Checker, s *Setting)
}

// Options configures the checker.
type Options struct {
	Providers map[string]*BlockSchema
	Balancers map[string]*BlockSchema
}

// StandardOptions returns the provider and balancer kinds that CloudSpeak
// ships, as the spec describes them.
func StandardOptions() *Options {
	return &Options{
		Providers: map[string]*BlockSchema{
			"local": {
				Settings: map[string]SettingSchema{
					"run":   {Type: String},
					"env":   {Map: true},
					"dir":   {Type: String},
					"grace": {Type: Duration},
				},
				Required: []string{"run"},
			},
			"ec2": {
				Settings: map[string]SettingSchema{
					"region":         {Type: String},
					"image":          {Type: String},
					"type":           {Type: String},
					"keypair":        {Type: String},
					"subnet":         {Type: String},
					"security_group": {Type: String},
					"user_data":      {Type: String},
					"tags":           {Map: true},
					"endpoint":       {Type: String},
					"elastic_ip":     {Type: String},
					"boot_timeout":   {Type: Duration},
					"user":           {Type: String},
					"ssh_port":       {Check: checkPort},
					"key":            {Type: String},
				},
				Required: []string{"image", "type"},
				Address:  "elastic_ip",
			},
			"ssh": {
				Settings: map[string]SettingSchema{
					"hosts":    {Type: String, List: true},
					"user":     {Type: String},
					"ssh_port": {Check: checkPort},
					"key":      {Type: String},
				},
				Required: []string{"hosts"},
			},
			"sim": {
				Settings: map[string]SettingSchema{
					"boot": {Type: Duration},
				},
			},
		},
		Balancers: map[string]*BlockSchema{
			"haproxy": {
				Settings: map[string]SettingSchema{
					"listen":    {Type: String},
					"mode":      {Words: []string{"http", "tcp"}},
					"algorithm": {Words: []string{"roundrobin", "leastconn", "source"}},
					"health":    {Check: checkHealth},
					"retries":   {Check: checkRetries},
					"drain":     {Type: Duration},
					"timeout":   {Type: Duration},
					"socket":    {Type: String},
					"backend":   {Type: String},
				},
				Required: []string{"listen|socket"},
			},
		},
	}
}

// checkHealth validates `health http "/path" every D` and `health tcp every D`.
func checkHealth(c *Checker, s *Setting) {
	args := s.Args
	const shape = `write health http "/healthz" every 2s, or health tcp every 2s`
	if s.Map != nil || len(args) == 0 || args[0].Word == nil {
		c.errorf(s.Key, shape, "health needs a check kind, http or tcp")
		return
	}
	kind := args[0].Word
	rest := args[1:]
	switch kind.Name {
	case "http":
		if len(rest) == 0 || rest[0].Value == nil || rest[0].Value.String == "" {
			c.errorf(kind, shape, "health http needs the path to request, as a string")
			return
		}
		if q, ok := c.value(rest[0].Value, String); ok && (len(q.Str) == 0 || q.Str[0] != '/') {
			c.errorf(rest[0].Value, `write the path from the root, e.g. "/healthz"`, "health check path must start with '/'")
		}
		rest = rest[1:]
	case "tcp":
	default:
		c.errorf(kind, didYouMean(kind.Name, []string{"http", "tcp"}), "unknown health check kind %q", kind.Name)
		return
	}
	if len(rest) == 0 {
		return // the balancer's default interval
	}
	if rest[0].Word == nil || rest[0].Word.Name != "every" || len(rest) != 2 || rest[1].Value == nil {
		c.errorf(rest[0], shape, "unexpected argument to health")
		return
	}
	c.positiveDuration(rest[1].Value, "health check interval")
}

// checkPort validates a port number setting.
func checkPort(c *Checker, s *Setting) {
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil || s.Args[0].Comma {
		c.errorf(s.Key, "write e.g. "+s.Key.Name+" 22", "%s takes one port number", s.Key.Name)
		return
	}
	c.whole(s.Args[0].Value, s.Key.Name, 1, 65535)
}

// checkRetries validates `retries N`: a whole number of further attempts.
func checkRetries(c *Checker, s *Setting) {
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil {
		c.errorf(s.Key, "write retries 3", "retries takes one whole number")
		return
	}
	c.whole(s.Args[0].Value, "retries", 0, 100)
}
