CREATE TABLE `agent_challenges` (
	`nonce` text PRIMARY KEY NOT NULL,
	`host` text NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `agent_challenges_expires_at` ON `agent_challenges` (`expires_at`);--> statement-breakpoint
CREATE TABLE `agent_sessions` (
	`token_hash` text PRIMARY KEY NOT NULL,
	`host` text NOT NULL,
	`expires_at` integer NOT NULL,
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `agent_sessions_host` ON `agent_sessions` (`host`);--> statement-breakpoint
CREATE INDEX `agent_sessions_expires_at` ON `agent_sessions` (`expires_at`);