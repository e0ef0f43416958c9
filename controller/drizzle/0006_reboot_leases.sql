CREATE TABLE `reboot_leases` (
	`host` text PRIMARY KEY NOT NULL,
	`manifest_version` integer NOT NULL,
	`granted_at` integer NOT NULL,
	FOREIGN KEY (`host`) REFERENCES `hosts`(`name`) ON UPDATE no action ON DELETE cascade
);
