package brainycloud_test

import (
	"context"
	"encoding/json"
	"log"

	"github.com/soullabs/brainy"
	"github.com/soullabs/brainy/brainycloud"
)

// A Brain on S3 (credentials from the AWS chain). Not run: it needs a bucket.
func ExampleWithStorage() {
	ctx := context.Background()
	brain, err := brainy.New(ctx, brainycloud.WithStorage("s3://my-bucket/brainy?region=eu-west-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer brain.Close()
	brain.Add(ctx, brainy.Item{Type: "person", Data: json.RawMessage(`{"name":"John"}`)})
}

// Recent items on local disk, idle ones in Google Cloud Storage. Not run.
func ExampleWithTiered() {
	brain, err := brainy.New(context.Background(), brainycloud.WithTiered("./hot", "gs://my-bucket/warm", ""))
	if err != nil {
		log.Fatal(err)
	}
	defer brain.Close()
}
