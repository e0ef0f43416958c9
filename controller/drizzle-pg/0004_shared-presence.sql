CREATE TABLE "replica_heartbeats" (
	"replica_id" text PRIMARY KEY NOT NULL,
	"seen_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "connected_replica" text;--> statement-breakpoint
ALTER TABLE "hosts" ADD COLUMN "connection_mode" text;