import { defineClassifier } from './element.ts';

// Read while this script runs: it locates onnxruntime's files next to the widget, wherever it is hosted.
const script = document.currentScript as HTMLScriptElement | null;
defineClassifier(script?.src || document.baseURI);
