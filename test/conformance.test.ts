import { adapters } from './adapters.js';
import { conformanceSuite } from './conformance/suite.js';

for (const [name, factory] of adapters) conformanceSuite(name, factory);
