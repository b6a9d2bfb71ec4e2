package lang

import (
	"strings"
	"testing"
)

func TestHelpCoversEveryTopic(t *testing.T) {
	for _, topic := range HelpTopics() {
		text, err := HelpText(topic)
		if err != nil || strings.TrimSpace(text) == "" {
			t.Errorf("help %s: %q, %v", topic, text, err)
		}
	}
	overview, err := HelpText("")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commandHelp {
		if !strings.Contains(overview, c.Usage) {
			t.Errorf("help does not list %s", c.Usage)
		}
	}
	if _, err := HelpText("restat"); err == nil || !strings.Contains(err.Error(), `did you mean "restart"?`) {
		t.Errorf("help restat: %v", err)
	}
}

func TestHelpTopicChecked(t *testing.T) {
	_, _, diags := Load([]Source{{Name: "repl:1", Src: []byte("help whne")}}, nil)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `no help for "whne"`) {
		t.Fatalf("help whne: %v", diags)
	}
}
