ALTER TABLE `webhooks` ADD `dead_since` integer;--> statement-breakpoint
ALTER TABLE `webhooks` ADD `dead_reason` text;