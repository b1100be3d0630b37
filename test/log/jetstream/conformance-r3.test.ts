import { jetStreamConformance } from './conformance-suite.js';

jetStreamConformance('three nodes, three replicas', 3, 3);
