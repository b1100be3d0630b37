import { jetStreamConformance } from './conformance-suite.js';

jetStreamConformance('single node', 1, 1);
