import { LazyContentInitial1764460800000 } from './0001-initial.js';
import { LazyContentEntryMaxAge1764547200000 } from './0002-entry-max-age.js';

/** The catalog's migrations, in order. Add them to the `migrations` of a DataSource your app already has. */
export const catalogMigrations = [LazyContentInitial1764460800000, LazyContentEntryMaxAge1764547200000];
