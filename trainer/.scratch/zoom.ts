import sharp from 'sharp';
const out = '/tmp/synth-default';
const names = ['train/002.Black_Hooked_Redcrest_Pintail_Redeye/0001.png','train/004.Red_Stubby_Crestless_Bluebar_Redeye/0000.png','train/001.Red_Slender_Redbar_Forktail_Redeye/0002.png','train/006.Red_Hooked_Crestless_Fantail_Blueeye/0003.png'];
const comps = [];
for (let i = 0; i < names.length; i++) comps.push({ input: await sharp(`${out}/${names[i]}`).resize(256,256,{kernel:'nearest'}).toBuffer(), left: i*256, top: 0 });
await sharp({ create: { width: 1024, height: 256, channels: 3, background: '#000' } }).composite(comps).png().toFile('/tmp/synthetic-zoom.png');
