CREATE TABLE "agent_challenges" (
	"nonce" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "agent_sessions" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"host" text NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "agent_sessions" ADD CONSTRAINT "agent_sessions_host_hosts_name_fk" FOREIGN KEY ("host") REFERENCES "public"."hosts"("name") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "agent_challenges_expires_at" ON "agent_challenges" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "agent_sessions_host" ON "agent_sessions" USING btree ("host");--> statement-breakpoint
CREATE INDEX "agent_sessions_expires_at" ON "agent_sessions" USING btree ("expires_at");